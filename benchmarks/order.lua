-- wrk script for the realistic route: POST /order with a JSON body (benchmarks/apps/order.py).
-- Used by run.py as `wrk -s benchmarks/order.lua http://127.0.0.1:PORT/order`.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[{"customer_id": 42, "items": [{"sku": "ALU-0010", "quantity": 2}, {"sku": "DMV-0123", "quantity": 1}, {"sku": "HKU-1007", "quantity": 5}, {"sku": "ZZZ-9999", "quantity": 1}], "shipping": {"street": "1 Example Street", "city": "Springfield", "postcode": "AB1 2CD", "country": "GB"}, "coupon": "WELCOME10", "note": "leave at the door"}]]
