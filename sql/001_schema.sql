-- Schema that holds the platform's tracking tables.
CREATE SCHEMA IF NOT EXISTS data_platform;
