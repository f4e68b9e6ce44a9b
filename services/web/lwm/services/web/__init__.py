"""The Market API over HTTP/JSON and the web UI, in front of the gateway.

Routes come from the google.api.http rules on MarketService (protos/learnware/v1/market.proto),
bodies follow proto3's JSON mapping, and every call goes to the gateway over gRPC.
"""
