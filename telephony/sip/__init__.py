"""Sans-I/O SIP: messages, URIs, transactions, dialogs and digest authentication."""
