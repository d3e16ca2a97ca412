"""Printable labels for assets and locations: what a scanner or a phone camera reads.

A count needs every asset to carry a readable identifier and every rack and room a label
that sets the location context. This package makes both from the asset list:

* :mod:`.content` decides what each label's codes hold (the asset tag, a GS1 Digital
  Link or element string with AI 8004 GIAI, a location label exactly as the scanner's
  rules recognise it) and checks every payload against those rules;
* :mod:`.source` reads the register (CSV, a run's ``register.parquet``, a golden
  register) and applies ``--where`` selections;
* :mod:`.stock` holds sheet layouts of common label stock and the single-label roll;
* :mod:`.pdf` draws the labels (segno for QR, reportlab for Code 128 and the page);
* :mod:`.zpl` writes ZPL for Zebra printers, with the GIAI-96 EPC for RFID inlays.
"""
