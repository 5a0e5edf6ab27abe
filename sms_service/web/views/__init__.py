"""web/views"""
