"""nipad.cli"""
