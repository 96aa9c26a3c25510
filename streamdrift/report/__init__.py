"""Replay reports: what each signal's detector saw and where it alerted, as PNG plots and one HTML page.

`collect` watches a replay in bounded memory (pure Python); `render` draws with matplotlib, an optional
extra (`pip install 'streamdrift[report]'`) imported only when a report is written; `progress` is the
progress line of long replays; `defaults` holds the option defaults the command line shows. Nothing is
imported here, so that naming a default does not load the detection core.
"""
