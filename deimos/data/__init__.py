"""deimos/data"""
