pub mod etcd_model;
pub mod history;
pub mod node_model;
