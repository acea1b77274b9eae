-- A message's address replaced by its hash and its text dropped; content_sha256 (which the
-- audit trail holds) stays, so the message as sent can still be matched against a copy.
UPDATE outbox SET address = :address, subject = '', body_text = '', body_html = '',
       gateway_answer = ''
WHERE idem_key = :idem_key;
