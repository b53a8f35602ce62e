"""nipad.engine"""
