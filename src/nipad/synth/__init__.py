"""nipad.synth"""
