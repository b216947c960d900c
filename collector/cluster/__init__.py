"""Host and GPU collectors with Telegraf's measurement and field names (``cpu``, ``mem``,
``disk``, ``diskio``, ``net``, ``nvidia_smi``), so existing dashboards and queries carry over."""
