"""REST API tokens stored hashed: the database holds the SHA-256 of each token,
never the token, which is shown once when it is issued (rotation replaces it).
"""
