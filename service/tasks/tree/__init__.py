"""Subtasks: the tree of a list's tasks, its keys, and the writes that keep its invariant."""
