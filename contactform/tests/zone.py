"""The DNS zone the contact form's tests answer MX lookups from (tests.mailservers.DnsServer)."""

# name -> {type: [rdata text]}; a name with no entry for a type answers NOERROR with no records.
ZONE = {
    "example.com.": {"MX": ["10 mx.example.com."], "A": ["192.0.2.10"]},
    "mx.example.com.": {"A": ["192.0.2.10"]},
    "a-only.example.net.": {"A": ["192.0.2.20"]},
    "null-mx.example.org.": {"MX": ["0 ."]},
    "no-mail.example.org.": {"TXT": ['"nothing here"']},
}
SILENT = {"slow.example.com."}  # never answered: the resolver times out
