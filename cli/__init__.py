"""The stalwart-cli verbs as manage.py commands (describe, get, query, create, update, delete,
apply, snapshot).

The commands are a schema-driven JMAP client, as the reference CLI is: they read the /api/schema
document and speak x:T/get|set|query. Two transports give the same output: in-process through
jmapapi.engine against the configured database (the default), or HTTP against a running server
(--url). See docs/cli.md.
"""
