"""deimos/experiments"""
