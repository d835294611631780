"""Task lists: the user's named lists of tasks, in their own order (the Inbox is no list)."""
