"""deimos/campaign"""
