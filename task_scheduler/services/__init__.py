"""Use cases: what the API asks for, in terms of the domain and the store."""
