"""nipad.models"""
