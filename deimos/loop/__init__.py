"""deimos/loop"""
