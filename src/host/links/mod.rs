//! The host's links: one dump of them, looked up by name or index ([`LinkTable`]), and the
//! classifiers that read it ([`team`]).

pub mod team;

use std::collections::HashMap;

use anyhow::{Context, Result};

use crate::netlink::{LinkExt, LinkMessage, Netlink};

/// One link dump, looked up by name or index, taken once per invocation.
pub struct LinkTable {
    links: Vec<LinkMessage>,
    by_name: HashMap<String, usize>,
    by_index: HashMap<u32, usize>,
}

impl LinkTable {
    pub fn load(nl: &mut Netlink) -> Result<LinkTable> {
        Ok(LinkTable::from_links(nl.links().context("list links")?))
    }

    pub fn from_links(links: Vec<LinkMessage>) -> LinkTable {
        let mut by_name = HashMap::new();
        let mut by_index = HashMap::new();
        for (i, link) in links.iter().enumerate() {
            by_index.insert(link.header.index, i);
            if let Some(name) = link.name() {
                by_name.insert(name.to_string(), i);
            }
        }
        LinkTable {
            links,
            by_name,
            by_index,
        }
    }

    pub fn links(&self) -> &[LinkMessage] {
        &self.links
    }

    pub fn get(&self, name: &str) -> Option<&LinkMessage> {
        self.by_name.get(name).map(|&i| &self.links[i])
    }

    pub fn name_of(&self, index: u32) -> Option<String> {
        self.by_index
            .get(&index)
            .and_then(|&i| self.links[i].name())
            .map(str::to_string)
    }

    pub fn index_of(&self, name: &str) -> Option<u32> {
        self.get(name).map(|l| l.header.index)
    }

    pub fn by_index(&self, index: u32) -> Option<&LinkMessage> {
        self.by_index.get(&index).map(|&i| &self.links[i])
    }
}
