// safecam: the Lovelace dashboard strategy `custom:safecam` (see dashboard.py and docs/dashboard.md).
// A dashboard whose config is `strategy: {type: custom:safecam}` gets its cards from the integration
// each time it opens (websocket command safecam/dashboard), so it follows new cameras, sites, zones and gates.
// Home Assistant calls the static generate(); the element itself is never rendered.
class SafecamDashboardStrategy {
  static async generate(_config, hass) {
    return hass.callWS({ type: "safecam/dashboard" });
  }
}

if (!customElements.get("ll-strategy-dashboard-safecam")) {
  customElements.define("ll-strategy-dashboard-safecam", SafecamDashboardStrategy);
}
