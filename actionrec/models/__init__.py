"""The model definitions and their builders; they import nothing else from the library."""
