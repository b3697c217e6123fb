"""External directories (LDAP, SQL, OpenID Connect): look people up and check their secrets.

This app knows nothing of accounts: a backend is built from a plain configuration
(`base.LdapConfig`, `base.SqlConfig`, `base.OidcConfig`) and answers with an
`base.ExternalPrincipal`. What the server does with the answer (mirroring the account, roles,
bans, caching the verdict) is the accounts app's business.
"""
