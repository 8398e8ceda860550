"""Security: who a proxy is to the control plane, and (later) to its peers.

The stage sits beside `translate/`: pure derivations from keys and inputs, with the few
files it keeps (keys) read and written only by their owner.
"""
