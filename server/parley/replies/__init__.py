"""Replies: generation decoupled from sockets through a Redis Stream per reply."""
