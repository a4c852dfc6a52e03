"""Grid signals (room for issue 11): one provider layer for live and recorded carbon intensity, marginal
emissions, price and curtailment. It sits above ``forecast`` and ``evaluate``/``train`` and below
``placement``; nothing is implemented here yet."""
