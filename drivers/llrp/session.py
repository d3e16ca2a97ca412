"""Reader configuration on top of sllurp's LLRP session state machine: the reader's
power table and frequency information read from its capabilities, the continuous
ROSpec, and ROSpec housekeeping that touches only our own ROSpec id."""

from __future__ import annotations

from typing import Any

from sllurp.llrp import LLRPClient
from sllurp.llrp import LLRPReaderState as SllurpState

from tagsweep.drivers.llrp.settings import LlrpSettings


class ReaderSession(LLRPClient):  # type: ignore[misc]  # sllurp ships no type information
    """sllurp's session state machine with our ROSpec and our ROSpec housekeeping."""

    def __init__(self, settings: LlrpSettings, **kwargs: Any) -> None:
        super().__init__(settings.sllurp_config(), **kwargs)
        self.settings = settings
        self.power_table: list[tuple[int, float]] = []  # (index, dBm) as the reader says
        self.power_choice = ""  # what tx_power_dbm became, for the log
        self.frequency_choice = ""  # the hop table or fixed channel used, for the log

    def parseCapabilities(self, capdict: dict[str, Any]) -> None:  # noqa: N802  (sllurp's name)
        band = capdict.get("RegulatoryCapabilities", {}).get("UHFBandCapabilities", {})
        entries = band.get("TransmitPowerLevelTableEntry", [])
        entries = [entries] if isinstance(entries, dict) else entries
        self.power_table = sorted(
            (int(e["Index"]), int(e["TransmitPowerValue"]) / 100.0) for e in entries
        )
        self._choose_frequencies(band.get("FrequencyInformation", {}))
        super().parseCapabilities(capdict)

    def _choose_frequencies(self, info: dict[str, Any]) -> None:
        """RFTransmitter's HopTableID / ChannelIndex from the reader's own frequency
        information: a hopping (FCC) reader's first hop table, a fixed-frequency (ETSI)
        reader's first channel; sllurp would always send hop table 1, channel 1."""
        tables = info.get("FrequencyHopTable") or []
        tables = [tables] if isinstance(tables, dict) else tables
        frequencies = self.config.frequencies
        if info.get("Hopping") and tables:
            table = tables[0]
            frequencies["HopTableId"] = int(table["HopTableId"])
            frequencies["ChannelList"] = [1]
            khz = table.get("Frequency") or []
            self.frequency_choice = (
                f"hopping over table {table['HopTableId']} ({len(khz)} channels"
                + (f", {min(khz) / 1000:.2f}-{max(khz) / 1000:.2f} MHz)" if khz else ")")
            )
        elif info.get("FixedFrequencyTable"):
            fixed = info["FixedFrequencyTable"]
            khz = fixed.get("Frequency") or []
            frequencies["HopTableId"] = 0
            frequencies["ChannelList"] = [1]
            first = f" ({khz[0] / 1000:.2f} MHz)" if khz else ""
            self.frequency_choice = (
                f"fixed channel 1{first} of {len(khz)} (the reader does not hop)"
            )

    def setTxPowerDbm(self, tx_pow_dbm: Any = None) -> None:  # noqa: N802  (sllurp's name)
        """tx_power_dbm through the reader's own power table: the nearest entry, whatever
        index the table starts at (sllurp assumes 1 and a sorted table; a Zebra FX's
        starts at 0, and sllurp's index 0 means "maximum")."""
        if not self.power_table or not isinstance(tx_pow_dbm, dict):
            super().setTxPowerDbm(tx_pow_dbm)
            return
        choices = []
        for antenna, wanted in tx_pow_dbm.items():
            index, dbm = min(self.power_table, key=lambda e: (abs(e[1] - float(wanted)), e[0]))
            self.config.tx_power[antenna] = index
            choices.append(f"antenna {antenna}: {wanted} dBm → index {index} ({dbm:.2f} dBm)")
        low, high = self.power_table[0], self.power_table[-1]
        self.power_choice = "; ".join(choices) + (
            f" (reader's table: {len(self.power_table)} entries, index {low[0]} = "
            f"{low[1]:.2f} dBm … index {high[0]} = {high[1]:.2f} dBm)"
        )

    def getROSpec(self, force_new: bool = False) -> Any:  # noqa: N802  (sllurp's name)
        if self.rospec and not force_new:
            return self.rospec
        rospec = super().getROSpec(force_new)
        rospec["ROSpecID"] = self.settings.rospec_id
        # Continuous inventory: reports cut every N tags, inventory never stops for them.
        rospec["ROReportSpec"]["ROReportTrigger"] = "Upon_N_Tags_Or_End_Of_ROSpec"
        rospec["ROReportSpec"]["N"] = self.settings.report_n
        return rospec

    # N802/N803 below: overrides must keep sllurp's camelCase method and argument names
    def stopPolitely(self, onCompletion: Any = None, disconnect: bool = False) -> None:  # noqa: N802,N803
        """Delete only our own ROSpec (sllurp deletes every client's ROSpecs)."""
        if disconnect:
            self.disconnecting = True
        self.stopAllROSpecs(onCompletion)

    def stopAllROSpecs(self, onCompletion: Any = None) -> None:  # noqa: N802,N803  (as above)
        self.sendMessage({"DELETE_ROSPEC": {"ROSpecID": self.settings.rospec_id}})
        self.setState(SllurpState.STATE_SENT_DELETE_ROSPEC)

        def deleted(state: Any, _is_success: bool, *args: Any) -> None:
            # "no such ROSpec" is the normal answer on a fresh reader: carry on
            if onCompletion:
                onCompletion(state, True, *args)

        self._deferreds["DELETE_ROSPEC_RESPONSE"].append(deleted)
