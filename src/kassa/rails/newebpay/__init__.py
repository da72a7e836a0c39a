"""NewebPay (藍新金流): the MPG 2.0 wire format (encrypted TradeInfo, TradeSha, notifications)."""
