"""Agent interfaces: the HTTP API, the WebSocket event stream, the MQTT bus and the web CCP.

Every CCP action is reachable three ways with one meaning (MISSION.md): the web CCP and
scripts call the HTTP API, devices and bars publish MQTT commands, and all of them end in
:func:`telephony.api.commands.execute` on the switch's contact center.
"""
