-- A campaign's Vicidial campaign (docs/vicidial.md): campaigns (Vicidial lists) that name the
-- same one are searched together by add_lead's DUP...CAMP modes and update_lead's CAMPAIGN.
ALTER TABLE campaigns ADD COLUMN vicidial_campaign text;
CREATE INDEX campaigns_vicidial_idx ON campaigns (account_id, vicidial_campaign);
