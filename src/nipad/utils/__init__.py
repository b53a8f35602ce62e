"""nipad.utils"""
