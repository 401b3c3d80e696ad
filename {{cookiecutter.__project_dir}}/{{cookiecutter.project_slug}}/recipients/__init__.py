"""What happens to a mail after "sent", per recipient, and the addresses not to mail again:

models.py        Recipient (a mail's recipient and the provider's message id for it), Event
                 (what the provider said about it), Suppression (an address not to mail)
webhooks.py      the email services' tracking webhooks (anymail's views), behind a guard:
                 body size, the webhook secret, JSON, Amazon SNS signatures
events.py        records each event anymail's tracking signal brings; suppresses where due
suppression.py   who must not get a mail (the worker asks before it sends), and what SMTP
                 refusals teach
unsubscribe.py   List-Unsubscribe for bulk mail, and the one-click page it points to
admin.py         suppressed addresses (add by hand, lift), recipients with their events
"""
