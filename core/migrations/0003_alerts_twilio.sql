-- Twilio SMS and voice pages (DESIGN.md §7): a short code per alert to acknowledge by SMS
-- reply, the raw provider status of each page, and cancelled pages of handled alerts.

-- "Reply ACK K7Q2MD": unambiguous alphabet (no 0/O, 1/I/L), unique among open alerts so a
-- code names exactly one alert while it matters; resolved alerts free theirs.
ALTER TABLE alerts ADD COLUMN ack_code text CHECK (ack_code ~ '^[A-HJKMNP-Z2-9]{6}$');
CREATE UNIQUE INDEX alerts_open_ack_code_idx ON alerts (ack_code) WHERE state <> 'resolved';

-- 'cancelled': a page not yet sent when its alert was acknowledged or resolved.
ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check
    CHECK (status IN ('pending', 'sending', 'sent', 'delivered', 'failed', 'cancelled'));
-- Twilio's own word from the last status callback (queued, undelivered, no-answer, …).
ALTER TABLE notifications ADD COLUMN provider_status text;

-- "Reply 1" acknowledges the alert paged most recently to the number that replies.
CREATE INDEX notifications_recipient_sent_idx ON notifications (recipient, sent_at DESC)
    WHERE sent_at IS NOT NULL;
-- Status callbacks that carry no notification id are matched on the Twilio SID.
CREATE INDEX notifications_provider_ref_idx ON notifications (provider_ref)
    WHERE provider_ref IS NOT NULL;
