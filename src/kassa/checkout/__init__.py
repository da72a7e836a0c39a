"""The hosted checkout page (`/pay/{order id}`): server-rendered, works without JavaScript."""
