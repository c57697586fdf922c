INSERT INTO accounts (email) VALUES ('admin@example.invalid') ON CONFLICT DO NOTHING;
