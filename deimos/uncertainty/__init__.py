"""deimos/uncertainty"""
