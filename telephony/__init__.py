"""qconnect: a SIP softswitch that reproduces contact-center quick connects."""
