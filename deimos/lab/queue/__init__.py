"""deimos/lab/queue"""
