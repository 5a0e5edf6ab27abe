"""carrier"""
