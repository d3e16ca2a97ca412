"""The preset of SAP FI-AA asset lists, as a German Excel saves them from the ALV grid
(';'-separated, windows-1252, decimal comma, day-first dates, German or English
headers).
"""

from __future__ import annotations

from typing import Final

from tagsweep.engine.presets.preset import Preset

# SAP FI-AA: an asset list (AS03 master data, S_ALR_87011990 / AR01 asset balances, the
# Asset Explorer) saved from the ALV grid by a German Excel: ';'-separated,
# windows-1252, "1.899,00" and "17.04.2023", English or German headers. "Inventory
# number" (Inventarnummer, ANLA-INVNR) is the asset tag, "Deactivation on"
# (Deaktivierung am, ANLA-DEAKT) set means the asset is retired, "Asset" and "Subnumber"
# (Anlage, Unternummer) are SAP's own record id, "Acquis.val." the acquisition value.
# An inventory number "can be used as an alternative to the asset number" (SAP Business
# One SDK help, Items.InventoryNumber).
SAP_FIAA: Final = Preset(
    "sap_fiaa",
    "fixed_asset",
    {
        "asset_tag": [
            "Inventory number",
            "Inventory No.",
            "Inventarnummer",
            "Inventarnr.",
            "Inv.-Nr.",
            "INVNR",
        ],
        "serial": ["Serial number", "Serial no.", "Serialnummer", "Serialnr.", "SERNR"],
        "manufacturer": ["Manufacturer", "Hersteller"],
        "category": ["Asset Class", "Anlagenklasse", "ANLKL"],
        # the asset description is free text ("Notebook Dell Latitude 7440"), and SAP's
        # location and person codes are not an ITAM's: none is compared unless mapped
        # in [engine.sources.<name>.columns]
        "value": [
            "Acquis.val.",
            "Acquisition value",
            "APC",
            "AnschWert",
            "Anschaffungswert",
            "Anschaffungs- und Herstellungskosten",
            "AHK",
            "Acq. value",
            "Book val.",
            "Buchwert",
        ],
        "record_id": [
            ("Asset", "Subnumber"),
            ("Asset", "SNo."),
            ("Anlage", "Unternummer"),
            ("Anlage", "UNr"),
            ("ANLN1", "ANLN2"),
        ],
        "retired_on": [
            "Deactivation on",
            "Deactivation date",
            "Deaktivierung am",
            "Deaktivierungsdatum",
            "Deakt.Dat.",
            "Deact.date",
            "DEAKT",
        ],
        "updated_at": ["Changed on", "Geändert am"],
    },
    required_any=("asset_tag", "serial", "record_id"),
    status_map={"deactivated": "retired"},
    decimal_comma=True,
    day_first=True,
)
