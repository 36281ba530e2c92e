//! The device's own settings: one text value per key. The node decides what the
//! keys mean and validates values before they get here.

use rusqlite::{OptionalExtension, params};

use crate::{Result, Store};

impl Store {
    /// The value of `key`, if it was ever set.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self.conn.query_row("SELECT value FROM settings WHERE key = ?1", params![key], |r| r.get(0)).optional()?)
    }

    /// Sets several keys at once (`None` removes one): all or none.
    pub fn set_settings(&mut self, values: &[(&str, Option<&str>)]) -> Result<()> {
        let tx = self.conn.transaction()?;
        for (key, value) in values {
            match value {
                Some(v) => tx.execute(
                    "INSERT INTO settings (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![key, v],
                )?,
                None => tx.execute("DELETE FROM settings WHERE key = ?1", params![key])?,
            };
        }
        tx.commit()?;
        Ok(())
    }

    /// Sets `key` to `value`, or removes it when `value` is `None`.
    pub fn set_setting(&mut self, key: &str, value: Option<&str>) -> Result<()> {
        match value {
            Some(v) => self.conn.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, v],
            )?,
            None => self.conn.execute("DELETE FROM settings WHERE key = ?1", params![key])?,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;

    #[test]
    fn settings_persist_and_clear() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        {
            let mut s = Store::open(&path).unwrap();
            assert_eq!(s.setting("device_name").unwrap(), None);
            s.set_setting("device_name", Some("Alice's laptop")).unwrap();
            s.set_setting("device_name", Some("노트북")).unwrap();
        }
        let mut s = Store::open(&path).unwrap();
        assert_eq!(s.setting("device_name").unwrap().as_deref(), Some("노트북"));
        s.set_setting("device_name", None).unwrap();
        assert_eq!(s.setting("device_name").unwrap(), None);
    }
}
