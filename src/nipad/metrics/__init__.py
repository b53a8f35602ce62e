"""nipad.metrics"""
