"""A multi-user todo REST API: Starlette, msgspec and PostgreSQL, behind Better Auth JWTs."""
