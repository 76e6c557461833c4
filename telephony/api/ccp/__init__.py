"""The web CCP: static HTML, JS and CSS served at /ccp/ (a package so they ship in the wheel)."""
