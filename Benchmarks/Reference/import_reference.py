#!/usr/bin/env python3
"""The reference `import-benchmark` compares `fleet-telemetry import` with (issue 19).

A straightforward importer of Auto API vehicle-data responses (JSON lines), as a fleet engineer
would write it with the standard library: json + sqlite3, one transaction per response,
INSERT OR IGNORE into a wide samples table and an upsert into latest. No unit conversion, no
events, no raw archive. WAL with synchronous = NORMAL, as fleet-telemetry runs.

    import_reference.py RESPONSES.jsonl DATABASE
"""

import json
import sqlite3
import sys
import time
from datetime import datetime


def milliseconds(text):
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def rows(document, received_at):
    vin = document["vin"]
    for capability, properties in document.items():
        if not isinstance(properties, dict):
            continue
        for name, entries in properties.items():
            for index, entry in enumerate(entries if isinstance(entries, list) else [entries]):
                if not isinstance(entry, dict) or "data" not in entry or "timestamp" not in entry:
                    continue
                data = entry["data"]
                instance = "" if not isinstance(entries, list) else str(index)
                unit = None
                if isinstance(data, dict) and "value" in data:
                    unit = data.get("unit")
                    data = data["value"]
                if isinstance(data, bool) or not isinstance(data, (int, float)):
                    number, text = None, data if isinstance(data, str) else json.dumps(data)
                else:
                    number, text = float(data), None
                yield (vin, f"{capability}.{name}", instance, milliseconds(entry["timestamp"]), number, text,
                       unit, received_at)


def main():
    source, path = sys.argv[1], sys.argv[2]
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.executescript("""
        CREATE TABLE IF NOT EXISTS samples (
            vin TEXT NOT NULL, property TEXT NOT NULL, instance TEXT NOT NULL, observed_at INTEGER NOT NULL,
            value_num REAL, value_text TEXT, unit TEXT, received_at INTEGER NOT NULL,
            PRIMARY KEY (vin, observed_at, property, instance)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS latest (
            vin TEXT NOT NULL, property TEXT NOT NULL, instance TEXT NOT NULL, observed_at INTEGER NOT NULL,
            value_num REAL, value_text TEXT, unit TEXT, received_at INTEGER NOT NULL,
            PRIMARY KEY (vin, property, instance)) WITHOUT ROWID;
    """)
    responses = 0
    stored = 0
    with open(source, "rb") as lines:
        for line in lines:
            if not line.strip():
                continue
            document = json.loads(line)
            received_at = int(time.time() * 1000)
            db.execute("BEGIN")
            for row in rows(document, received_at):
                stored += db.execute(
                    "INSERT OR IGNORE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row).rowcount
                db.execute(
                    """
                    INSERT INTO latest VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (vin, property, instance) DO UPDATE SET observed_at = excluded.observed_at,
                        value_num = excluded.value_num, value_text = excluded.value_text, unit = excluded.unit,
                        received_at = excluded.received_at
                    WHERE excluded.observed_at > latest.observed_at
                    """, row)
            db.execute("COMMIT")
            responses += 1
    print(f"imported {responses} responses, {stored} samples", file=sys.stderr)


if __name__ == "__main__":
    main()
