"""deimos/acquisition"""
