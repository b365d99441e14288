"""deimos/lab"""
