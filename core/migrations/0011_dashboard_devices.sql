-- Devices page (issue 8): the date each logger's calibration falls due. NULL: not recorded;
-- the page shows it as unknown rather than as current.
ALTER TABLE devices ADD COLUMN calibration_due date;
