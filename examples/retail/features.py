"""Customer features for the Online Retail data set: one definition, used offline and online."""

import parity as pt

customer = pt.Entity("customer", keys={"customer_id": int})

# Every invoice line is an event. The shop's nightly export lands an hour after the fact,
# so a history load marks each line known one hour after it happened.
purchases = pt.EventSource(
    "purchases",
    entity=customer,
    schema={"invoice": str, "item": str, "quantity": int, "amount": float},
    lag="1h",
)

# Where a customer lives: a new version whenever it changes.
profiles = pt.StateSource("profiles", entity=customer, schema={"country": str})


@pt.transform(dtype="float")
def days_since_last_order(last_order_at, at):
    if last_order_at is None:
        return None
    return (at - last_order_at).total_seconds() / 86_400


@pt.transform(dtype="float")
def avg_order_value_90d(spend_90d, orders_90d):
    return spend_90d / orders_90d if orders_90d else None


@pt.transform(dtype="bool")
def is_uk(country):
    return country == "United Kingdom" if country is not None else None


customer_features = pt.FeatureSet(
    "customer_features",
    entity=customer,
    features=[
        pt.Aggregate("spend_7d", purchases, "sum", "amount", window="7d"),
        pt.Aggregate("spend_30d", purchases, "sum", "amount", window="30d"),
        pt.Aggregate("spend_90d", purchases, "sum", "amount", window="90d"),
        pt.Aggregate("orders_7d", purchases, "count_distinct", "invoice", window="7d"),
        pt.Aggregate("orders_30d", purchases, "count_distinct", "invoice", window="30d"),
        pt.Aggregate("orders_90d", purchases, "count_distinct", "invoice", window="90d"),
        pt.Aggregate("orders_all", purchases, "count_distinct", "invoice"),
        pt.Aggregate("lines_30d", purchases, "count", window="30d"),
        pt.Aggregate("distinct_items_90d", purchases, "count_distinct", "item", window="90d"),
        pt.Aggregate("mean_line_amount_90d", purchases, "mean", "amount", window="90d"),
        pt.Aggregate("last_order_at", purchases, "max", "event_time"),
        pt.Lookup("country", profiles, "country"),
        days_since_last_order,
        avg_order_value_90d,
        is_uk,
    ],
)
