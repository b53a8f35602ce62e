"""nipad.data"""
