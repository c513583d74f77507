"""Capture engines -> PacketRecord. Imports nothing from analysis/, report/ or ui/."""
