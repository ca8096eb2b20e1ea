-- The `demo` database of `make run`'s sandbox: the tables every example in
-- README.md, client/README.md and proto/PROTOCOL.md uses. tests/integration
-- /test_docs.py loads this same file and runs those examples against it.
-- Idempotent: run on every start of the sandbox.
CREATE DATABASE IF NOT EXISTS demo;
CREATE TABLE IF NOT EXISTS demo.accounts (
	id INT PRIMARY KEY,
	owner VARCHAR(64) NOT NULL,
	balance DECIMAL(10,2) NOT NULL
) ENGINE=InnoDB;
INSERT IGNORE INTO demo.accounts VALUES (1, 'alice', 100.00), (2, 'bob', 50.00), (3, 'carol', 75.00);
CREATE TABLE IF NOT EXISTS demo.transfers (
	id INT AUTO_INCREMENT PRIMARY KEY,
	from_account INT NOT NULL,
	to_account INT NOT NULL,
	amount DECIMAL(10,2) NOT NULL,
	at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
) ENGINE=InnoDB;
CREATE TABLE IF NOT EXISTS demo.rates (
	currency CHAR(3) PRIMARY KEY,
	rate DECIMAL(12,6) NOT NULL
) ENGINE=InnoDB;
INSERT IGNORE INTO demo.rates VALUES ('EUR', 1.000000), ('USD', 1.080000), ('GBP', 0.850000);
CREATE TABLE IF NOT EXISTS demo.t1 (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB;
INSERT IGNORE INTO demo.t1 VALUES (1, 10), (2, 20), (3, 30), (7, 42);
CREATE TABLE IF NOT EXISTS demo.t2 (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB;
INSERT IGNORE INTO demo.t2 VALUES (1, 10), (2, 20), (3, 30), (7, 70);
