pub mod links;
pub mod nm;
